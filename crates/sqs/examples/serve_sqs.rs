//! Serves only SQS on `127.0.0.1:<port>` (default 4576) with its data under `<dir>` (default a
//! temporary directory): for trying the wire protocols with boto3 or the aws CLI in isolation.
//! `cargo run -p nimbus-sqs --example serve_sqs -- 4576 /tmp/sqs-data`

use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port = args.next().unwrap_or_else(|| "4576".into());
    let dir =
        args.next().map(std::path::PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("nimbus-sqs"));
    let sqs = nimbus_sqs::Sqs::open(&dir, "us-east-1", "000000000000").expect("open sqs");
    let health: nimbus_api::Health = Arc::new(|| serde_json::json!({"status": "ready"}));
    let api = nimbus_api::Api::new(vec![sqs as Arc<dyn nimbus_api::Service>], health);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.expect("bind");
    println!("sqs on http://127.0.0.1:{port}, data in {}", dir.display());
    api.serve(listener, std::future::pending(), Duration::from_secs(1)).await;
}
