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
    /// The region and account whose logs these are; None: nimbus's own.
    scope: Option<(String, String)>,
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
        self.send(Batch { group: group.to_owned(), stream: stream.to_owned(), events, scope: None });
    }
}

impl LogsSink {
    fn send(&self, batch: Batch) {
        if self.outgoing.try_send(batch).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "nimbus: log output is arriving faster than the node serving Logs takes it; dropping some"
            );
        }
    }

    /// Where the output of another region's (and account's) functions goes: that region's Logs.
    pub fn scoped(self: &Arc<Self>, region: &str, account: &str) -> Arc<dyn LogSink> {
        Arc::new(ScopedLogsSink {
            sink: self.clone(),
            region: region.to_owned(),
            account: account.to_owned(),
        })
    }
}

struct ScopedLogsSink {
    sink: Arc<LogsSink>,
    region: String,
    account: String,
}

impl LogSink for ScopedLogsSink {
    fn append(&self, group: &str, stream: &str, events: Vec<LogEvent>) {
        let local = self.sink.home.local().and_then(|regional| regional.at(&self.region, &self.account).ok());
        if let Some(logs) = local.as_ref().and_then(|logs| logs.opened()) {
            return logs.append(group, stream, events);
        }
        // Not open yet (opening waits on the disk), or served by another node: by the sender.
        let scope = Some((self.region.clone(), self.account.clone()));
        self.sink.send(Batch { group: group.to_owned(), stream: stream.to_owned(), events, scope });
    }
}

/// `PutLogEvents` on the serving node, making the group and stream first when they are missing
/// (as the local writer does).
async fn put(home: &LogsHome, batch: &Batch) -> Result<(), String> {
    let arn = batch.scope.as_ref().map(|(region, account)| format!("arn:aws:logs:{region}:{account}:"));
    if let (Some((region, account)), Some(regional)) = (&batch.scope, home.local()) {
        let logs = regional.at(region, account)?.get().await?;
        logs.append(&batch.group, &batch.stream, batch.events.clone());
        return Ok(());
    }
    let arn = arn.as_deref();
    let events: Vec<_> =
        batch.events.iter().map(|e| json!({ "timestamp": e.timestamp_ms, "message": e.message })).collect();
    let input = json!({ "logGroupName": batch.group, "logStreamName": batch.stream, "logEvents": events });
    match home.call_holder_in("Logs_20140328.PutLogEvents", JSON, &input, arn).await {
        Err(error) if error.contains("ResourceNotFoundException") => {
            let group = json!({ "logGroupName": batch.group });
            let stream = json!({ "logGroupName": batch.group, "logStreamName": batch.stream });
            for (operation, input) in [("CreateLogGroup", group), ("CreateLogStream", stream)] {
                match home.call_holder_in(&format!("Logs_20140328.{operation}"), JSON, &input, arn).await {
                    Err(error) if !error.contains("ResourceAlreadyExistsException") => return Err(error),
                    _ => {}
                }
            }
            home.call_holder_in("Logs_20140328.PutLogEvents", JSON, &input, arn).await.map(drop)
        }
        other => other.map(drop),
    }
}
