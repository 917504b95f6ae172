//! Adapters that let one service use another through the narrow traits the services define,
//! so that no service crate depends on another.

use std::sync::Arc;

use serde_json::Value;

use crate::sqs_home::SqsHome;

/// S3 bucket notifications: a function target becomes a durable asynchronous invocation, a
/// queue target an SQS message — both stored before `deliver` returns, so an acknowledged
/// object never loses its event.
pub struct S3Notifications {
    pub lambda: Arc<nimbus_lambda::Lambda>,
    pub sqs: Arc<SqsHome>,
}

impl nimbus_s3::NotificationSink for S3Notifications {
    fn deliver(&self, target: &nimbus_s3::NotificationTarget, event: Value) {
        let body = event.to_string();
        // Blocking on purpose (see above); block_in_place keeps the other tasks of this worker
        // running meanwhile.
        let outcome = tokio::task::block_in_place(|| match target {
            nimbus_s3::NotificationTarget::Lambda { function_arn } => {
                self.lambda.enqueue_event_blocking(function_arn, body.into_bytes())
            }
            nimbus_s3::NotificationTarget::Queue { queue_arn } => {
                tokio::runtime::Handle::current().block_on(self.sqs.send(queue_arn, body))
            }
        });
        if let Err(why) = outcome {
            eprintln!("nimbus: an S3 notification could not be delivered: {why}");
        }
    }

    fn exists(&self, target: &nimbus_s3::NotificationTarget) -> bool {
        match target {
            nimbus_s3::NotificationTarget::Lambda { function_arn } => {
                self.lambda.function_exists(function_arn)
            }
            nimbus_s3::NotificationTarget::Queue { queue_arn } => self.sqs.exists(queue_arn),
        }
    }
}

/// Function code and layers from nimbus's S3 (`S3Bucket`/`S3Key`).
pub struct S3Objects(pub Arc<nimbus_s3::S3>);

impl nimbus_lambda::Objects for S3Objects {
    fn read(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Vec<u8>, String> {
        self.0.read_object(bucket, key, version).map_err(|e| e.message)
    }
}

/// Life among several nodes on one database: heartbeats (with what this node holds, for
/// `nimbus status`), taking over the asynchronous invocations of nodes that stopped, the SQS
/// lease, and refreshing Lambda's functions when another node changed them. Nothing to do on
/// SQLite, where this node is alone.
/// `seen` receives every node as the last heartbeat found them, for the health document.
pub fn run_cluster(
    cluster: Option<Arc<nimbus_store::Cluster>>,
    lambda: Arc<nimbus_lambda::Lambda>,
    store: Arc<nimbus_store::LambdaStore>,
    held: [Arc<dyn Balanced>; 3],
    seen: Arc<std::sync::Mutex<Vec<nimbus_store::cluster::NodeInfo>>>,
) -> ClusterWork {
    use nimbus_store::Store;
    let Some(cluster) = cluster else {
        return ClusterWork(Vec::new());
    };
    lambda.share_store();
    cluster.report(
        "lambda",
        move || serde_json::json!({ "async_events": store.count_events().unwrap_or_default() }),
    );
    for service in &held {
        let serving = service.clone();
        cluster.report(service.lease(), move || serde_json::json!({ "serves": serving.serves() }));
    }
    let mut changes = cluster.subscribe();
    let own_topic = format!("lambda:{}", cluster.node());
    let reloading = lambda.clone();
    let reloads = tokio::spawn(async move {
        loop {
            match changes.recv().await {
                // "*": notifications were lost for a while (the database was out of reach).
                Ok(topic) if topic == "*" || (topic.starts_with("lambda:") && topic != own_topic) => {}
                // Missed some: reload to be sure.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            let lambda = reloading.clone();
            if let Ok(Err(error)) = tokio::task::spawn_blocking(move || lambda.reload()).await {
                eprintln!("nimbus: cannot refresh functions changed by another node: {error}");
            }
        }
    });
    // Each held service takes its lease steps on its own: closing one while the database is gone
    // may wait on its writes, which must hold up neither the heartbeat nor the others.
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = held
        .into_iter()
        .map(|service| {
            let every = cluster.expiry() / 4;
            tokio::spawn(async move {
                let mut step = tokio::time::interval(every);
                step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    step.tick().await;
                    service.balance().await;
                }
            })
        })
        .collect();
    tasks.push(reloads);
    tasks.push(tokio::spawn(async move {
        let cut_off = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut beat = tokio::time::interval(cluster.expiry() / 4);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            beat.tick().await;
            let (cluster, lambda, seen, cut_off) =
                (cluster.clone(), lambda.clone(), seen.clone(), cut_off.clone());
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = cluster.heartbeat() {
                    // Said once per outage; health shows it meanwhile.
                    if !cut_off.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        eprintln!("nimbus: cannot reach the database ({error}); this node claims no work until it can");
                    }
                    return;
                }
                if cut_off.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    eprintln!("nimbus: the database is reachable again");
                }
                if let Ok(nodes) = cluster.nodes() {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
                }
                let gone: Vec<String> = match cluster.dead_nodes() {
                    Ok(nodes) => nodes.into_iter().filter(|node| node != cluster.node()).collect(),
                    Err(_) => return,
                };
                if !gone.is_empty() && cluster.healthy() {
                    let adopted = lambda.adopt_events(&gone);
                    if adopted > 0 {
                        eprintln!(
                            "nimbus: took over {adopted} asynchronous invocation(s) of {}",
                            gone.join(", ")
                        );
                    }
                }
            })
            .await;
        }
    }));
    ClusterWork(tasks)
}

/// The background tasks of [`run_cluster`].
pub struct ClusterWork(Vec<tokio::task::JoinHandle<()>>);

impl ClusterWork {
    /// Stops them and waits until they are gone: a task still ticking while the runtime shuts
    /// down would find its timer gone.
    pub async fn stop(self) {
        for task in &self.0 {
            task.abort();
        }
        for task in self.0 {
            let _ = task.await;
        }
    }
}

/// A service held by one node of several (see `home`), as the heartbeat loop drives it.
pub trait Balanced: Send + Sync {
    fn lease(&self) -> &'static str;
    fn serves(&self) -> bool;
    fn balance(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

impl<S: crate::home::Held> Balanced for crate::home::Home<S> {
    fn lease(&self) -> &'static str {
        nimbus_api::Service::name(self)
    }
    fn serves(&self) -> bool {
        crate::home::Home::serves(self)
    }
    fn balance(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(crate::home::Home::balance(self))
    }
}

/// The cluster topic a node announces its Kinesis writes on.
pub const KINESIS_TOPIC: &str = "kinesis";

/// Wakes this node's Kinesis readers (pollers, subscriptions) when another node commits
/// records; nothing to wake while Kinesis is not open here.
pub fn wake_kinesis_readers(
    cluster: &Arc<nimbus_store::Cluster>,
    kinesis: Arc<crate::lazy::Lazy<nimbus_kinesis::Kinesis>>,
) {
    let mut changes = cluster.subscribe();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                // "*": notifications were lost for a while; Lagged: some were missed.
                Ok(topic) if topic == KINESIS_TOPIC || topic == "*" => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if let Some(kinesis) = kinesis.opened() {
                kinesis.records_written_elsewhere();
            }
        }
    });
}
