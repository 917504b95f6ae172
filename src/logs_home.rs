//! CloudWatch Logs among several nodes (see `home`): one node keeps the log catalog and writes
//! the segments; functions running on the other nodes send their output to it (as
//! `PutLogEvents`), so every node reads every function's logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nimbus_functions::telemetry::{LogEvent, LogSink};
use nimbus_logs::Logs;
use serde_json::json;
use tokio::sync::mpsc;

use crate::home::{Closing, Held, Home, Shape};
use crate::regional::Regional;

const JSON: &str = "application/x-amz-json-1.1";
/// Batches of output waiting to be sent to the serving node; beyond this they are dropped (and
/// counted), as the local writer drops under overload.
const WAITING_BATCHES: usize = 4096;

/// Every region's logs, served together by one node.
pub type LogsHome = Home<Regional<Logs>>;

pub fn shape() -> Shape {
    Shape {
        lease: "logs",
        claims: nimbus_logs::claims,
        claims_body: |_, _, _, _| false,
        unavailable: nimbus_logs::unavailable,
    }
}

impl Held for Logs {
    fn close(&self) -> Closing<'_> {
        Box::pin(Logs::close(self))
    }
}

/// Closes every region's instance.
impl Held for Regional<Logs> {
    fn close(&self) -> Closing<'_> {
        Box::pin(async move {
            for logs in self.opened() {
                logs.close().await;
            }
        })
    }
}

struct Batch {
    group: String,
    stream: String,
    events: Vec<LogEvent>,
}

/// Where functions' output goes on this node: the local writer when this node serves Logs,
/// otherwise the serving node.
pub struct LogsSink {
    home: Arc<LogsHome>,
    outgoing: mpsc::Sender<Batch>,
    dropped: AtomicU64,
}

impl LogsSink {
    /// Starts the sender to the serving node (call inside the runtime).
    pub fn new(home: Arc<LogsHome>) -> Arc<LogsSink> {
        let (outgoing, mut waiting) = mpsc::channel::<Batch>(WAITING_BATCHES);
        let sink = Arc::new(LogsSink { home: home.clone(), outgoing, dropped: AtomicU64::new(0) });
        tokio::spawn(async move {
            while let Some(batch) = waiting.recv().await {
                if let Err(error) = put(&home, &batch).await {
                    eprintln!("nimbus: {} log events of {} lost: {error}", batch.events.len(), batch.group);
                }
            }
        });
        sink
    }
}

impl LogSink for LogsSink {
    fn append(&self, group: &str, stream: &str, events: Vec<LogEvent>) {
        // Functions' output goes to nimbus's own region (Lambda's).
        if let Some(logs) = self.home.local().and_then(|regional| regional.home().opened().cloned()) {
            return logs.append(group, stream, events);
        }
        let batch = Batch { group: group.to_owned(), stream: stream.to_owned(), events };
        if self.outgoing.try_send(batch).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "nimbus: log output is arriving faster than the node serving Logs takes it; dropping some"
            );
        }
    }
}

/// `PutLogEvents` on the serving node, making the group and stream first when they are missing
/// (as the local writer does).
async fn put(home: &LogsHome, batch: &Batch) -> Result<(), String> {
    let events: Vec<_> =
        batch.events.iter().map(|e| json!({ "timestamp": e.timestamp_ms, "message": e.message })).collect();
    let input = json!({ "logGroupName": batch.group, "logStreamName": batch.stream, "logEvents": events });
    match home.call_holder("Logs_20140328.PutLogEvents", JSON, &input).await {
        Err(error) if error.contains("ResourceNotFoundException") => {
            let group = json!({ "logGroupName": batch.group });
            let stream = json!({ "logGroupName": batch.group, "logStreamName": batch.stream });
            for (operation, input) in [("CreateLogGroup", group), ("CreateLogStream", stream)] {
                match home.call_holder(&format!("Logs_20140328.{operation}"), JSON, &input).await {
                    Err(error) if !error.contains("ResourceAlreadyExistsException") => return Err(error),
                    _ => {}
                }
            }
            home.call_holder("Logs_20140328.PutLogEvents", JSON, &input).await.map(drop)
        }
        other => other.map(drop),
    }
}
