//! S3 alone on a port, for driving the crate with boto3 and the aws CLI before it is wired into
//! `nimbus`: accepts `nimbus up`'s arguments (`--host`, `--port`, `--data-dir`), so
//! `NIMBUS_BIN=target/debug/examples/s3_serve pytest tests/e2e/test_s3.py` works.
//! Notifications are appended to `<data-dir>/notifications.jsonl`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::{Api, Service};
use nimbus_s3::{NotificationSink, NotificationTarget, S3};
use nimbus_store::{Blobs, Database};

struct FileSink(Mutex<std::fs::File>);

impl NotificationSink for FileSink {
    fn deliver(&self, target: &NotificationTarget, event: serde_json::Value) {
        let target = match target {
            NotificationTarget::Lambda { function_arn } => function_arn,
            NotificationTarget::Queue { queue_arn } => queue_arn,
            NotificationTarget::Topic { topic_arn } => topic_arn,
            NotificationTarget::EventBridge { .. } => "default event bus",
        };
        let line = serde_json::json!({ "target": target, "event": event });
        let _ = writeln!(self.0.lock().unwrap(), "{line}");
    }

    /// Alone, S3 has no queues or functions to check a configuration against.
    fn exists(&self, _target: &NotificationTarget) -> bool {
        true
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let host = arg("--host").unwrap_or_else(|| "127.0.0.1".into());
    let port = arg("--port").unwrap_or_else(|| "4566".into());
    let data_dir = PathBuf::from(arg("--data-dir").unwrap_or_else(|| ".nimbus".into()));
    std::fs::create_dir_all(&data_dir)?;
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(data_dir.join("notifications.jsonl"))?;
    let sink: Arc<dyn NotificationSink> = Arc::new(FileSink(Mutex::new(log)));
    let (database, blobs) = (Database::sqlite(&data_dir), Blobs::new(&data_dir, "local", false));
    let s3: Arc<dyn Service> = S3::open_on(&database, &blobs, Some(sink), "us-east-1", "000000000000")?;
    let api = Api::new(vec![s3], Arc::new(|| serde_json::json!({ "status": "ready" })));
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    api.serve(listener, shutdown, Duration::from_secs(5)).await;
    Ok(())
}
