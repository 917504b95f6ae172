//! Serves CloudWatch alone over made-up Lambda activity, to try clients against it:
//! `cargo run -p nimbus-metrics --example serve -- 4599`, then e.g.
//! `aws --endpoint-url http://127.0.0.1:4599 cloudwatch list-metrics`.
//!
//! Made up, over the last few minutes: `demo` `$LATEST` 30 invocations (every fifth an error),
//! `demo` version `1` 10 on arm64, and `throttled` 3 throttles.

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::{Api, Service};
use nimbus_functions::telemetry::{InvocationRecord, MetricsSink};
use nimbus_metrics::Metrics;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(4599);
    let metrics = Metrics::in_memory();
    for i in 0..40u64 {
        let (version, architecture) = if i < 30 { ("$LATEST", "x86_64") } else { ("1", "arm64") };
        metrics.invocation(&InvocationRecord {
            function: "demo",
            version,
            duration: Duration::from_micros(10_000 + i * 1_000),
            billed_ms: 11 + i,
            memory_mb: 256,
            architecture,
            error: i < 30 && i.is_multiple_of(5),
            concurrent: 1 + (i % 3) as usize,
        });
    }
    for _ in 0..3 {
        metrics.throttle("throttled", "$LATEST");
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("CloudWatch on http://{}", listener.local_addr()?);
    let services: Vec<Arc<dyn Service>> = vec![metrics];
    let api = Api::new(services, Arc::new(|| serde_json::json!({"status": "ready"})));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    api.serve(listener, stop, Duration::from_secs(1)).await;
    Ok(())
}
